// safetensors reading and writing: see safetensors.h.
