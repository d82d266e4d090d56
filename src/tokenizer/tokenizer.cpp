// Tokenizer: see tokenizer.h.
