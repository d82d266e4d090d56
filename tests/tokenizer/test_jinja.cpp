// The Jinja interpreter: pieces (whitespace control, scoping, filters, Python printing, errors
// and limits), then every case of tests/fixtures/chat_template_renders.json, which
// transformers 5.25.0 rendered (scripts/fixtures/render_chat_templates.py): our render must be
// the same string, or raise where transformers raised.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "tokenizer/jinja/jinja.h"

namespace ll {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& source, const json& variables = json::object()) {
  return jinja::Template(source, "t").render(variables);
}

// strftime_now reads the fixture's date (render_chat_templates.py: FIXED_DATE 2026-12-05).
jinja::RenderOptions fixture_date_options() {
  jinja::RenderOptions options;
  std::tm day{};
  day.tm_year = 2026 - 1900;
  day.tm_mon = 11;  // December
  day.tm_mday = 5;
  options.now = day;
  return options;
}

TEST(Jinja, PrintsLikePython) {
  EXPECT_EQ(render("{{ 1 }} {{ 1.0 }} {{ 2.5 }} {{ true }} {{ none }} {{ x }}|"),
            "1 1.0 2.5 True None |");
  EXPECT_EQ(render("{{ [1, 'a', none] }} {{ {'k': 'v'} }}"), "[1, 'a', None] {'k': 'v'}");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 1 / 4 }} {{ 1e20 }} {{ 0.0001 }}"),
            "3 -4 2 0.25 1e+20 0.0001");
  EXPECT_EQ(render("{{ \"it's\" }} {{ ['it\\'s'] }}"), "it's [\"it's\"]");
}

// Expected strings below are what jinja2 3.1.6 renders (ImmutableSandboxedEnvironment with
// transformers' trim_blocks/lstrip_blocks).
TEST(Jinja, TuplesAreTuples) {
  EXPECT_EQ(render("{{ ('a', 1) }}"), "('a', 1)");
  EXPECT_EQ(render("{{ (1,) }}|{{ () }}|{{ (1, (2, 3), [4]) }}"), "(1,)|()|(1, (2, 3), [4])");
  EXPECT_EQ(render("{% set t = 1, 2 %}{{ t }}|{{ 1, 2 }}"), "(1, 2)|(1, 2)");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}.items() | list }}"), "[('b', 1), ('a', 2)]");
  EXPECT_EQ(
      render("{{ (1, 2) | tojson }}|{{ (1, 2) | string }}|{{ [(1, 'a')] }}|{{ {'k': (1,)} }}"),
      "[1, 2]|(1, 2)|[(1, 'a')]|{'k': (1,)}");
  // == as Python: a tuple equals a tuple, never a list.
  EXPECT_EQ(render("{{ (1, 2) == (1, 2) }}{{ (1, 2) == [1, 2] }}{{ (1, 2) != [1, 2] }}"
                   "{{ (1, 2) in [(1, 2)] }}{{ [1, 2] in [(1, 2)] }}{{ 'a' in ('a', 'b') }}"),
            "TrueFalseTrueTrueFalseTrue");
  // Iterated, indexed, sliced (still a tuple), measured like lists.
  EXPECT_EQ(
      render("{% for a, b in [(1, 2), (3, 4)] %}{{ a }}{{ b }}{% endfor %}{% for x in (5, "
             "6) %}{{ x }}{% endfor %}{{ (7, 8)[1] }}{{ (7, 8, 9)[1:] }}{{ (1, 2) | length }}"),
      "1234568(8, 9)2");
  EXPECT_EQ(render("{{ (1, 2)[::-1] }}|{{ (1, 2) + (3,) }}|{{ (1, 2) * 2 }}|{{ (1, 2) | list }}|"
                   "{{ (1, 2) < (1, 3) }}"),
            "(2, 1)|(1, 2, 3)|(1, 2, 1, 2)|[1, 2]|True");
  EXPECT_EQ(render("{% for x in 1, 2 %}{{ x }}{% endfor %}|{% for x in 1, 2, 3 if x != 2 %}{{ x }}"
                   "{% endfor %}"),
            "12|13");
  const std::string mixed = test::error_of([] { render("{{ (1,) + [1] }}"); });
  EXPECT_NE(mixed.find("can only concatenate tuple (not \"list\") to tuple"), std::string::npos)
      << mixed;
  const std::string order = test::error_of([] { render("{{ [1] < (1,) }}"); });
  EXPECT_NE(order.find("'<' not supported between instances of 'list' and 'tuple'"),
            std::string::npos)
      << order;
  // repr() of an Undefined inside a container, as jinja2's Undefined.
  EXPECT_EQ(render("{{ [x] }}|{{ {'a': x} }}"), "[Undefined]|{'a': Undefined}");
}

TEST(Jinja, DictsKeepTheirKeyOrder) {
  // The variables' objects keep their order (ordered_json), as json.loads gives Python.
  const json vars = {{"d", json::parse(R"({"b": 1, "a": {"z": 1, "y": 2}})")}};
  EXPECT_EQ(render("{{ d.items() | list }}|{{ d | items | list }}|{{ d }}|{{ d | tojson }}", vars),
            "[('b', 1), ('a', {'z': 1, 'y': 2})]|[('b', 1), ('a', {'z': 1, 'y': 2})]|"
            "{'b': 1, 'a': {'z': 1, 'y': 2}}|{\"b\": 1, \"a\": {\"z\": 1, \"y\": 2}}");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", vars),
            "b=1;a={'z': 1, 'y': 2};");
}

TEST(Jinja, WhitespaceControlAsTransformers) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes.
  EXPECT_EQ(render("a\n  {% if true %}\nb\n  {% endif %}\nc"), "a\nb\nc");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(render("{# comment #}\nx"), "x");     // trim_blocks after a comment too
  EXPECT_EQ(render("x {{ 'y' }}\nz"), "x y\nz");  // not after an output tag
  EXPECT_EQ(render("a\n"), "a");                  // one trailing newline dropped
  EXPECT_EQ(render("a\r\nb\n\n"), "a\nb\n");
  EXPECT_EQ(render("{{ \"}}\" }}{{ {'a': {'b': 1}}['a']['b'] }}"), "}}1");
}

TEST(Jinja, ScopingAndLoops) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = i %}{% endfor "
                   "%}{{ ns.x }}"),
            "2");
  EXPECT_EQ(render("{% if true %}{% set x = 3 %}{% endif %}{{ x }}"), "3");
  // Each iteration is a fresh scope: a `set` in one is gone in the next; before its `set`, an
  // iteration sees the outer value.
  EXPECT_EQ(render("{% for i in [1, 2] %}{% if i == 1 %}{% set x = 5 %}{% endif %}[{{ x }}]"
                   "{% endfor %}"),
            "[5][]");
  EXPECT_EQ(render("{% for i in [1, 2] %}{% if i == 1 %}{% set x = 5 %}{% endif %}"
                   "[{{ x is defined }}]{% endfor %}"),
            "[True][False]");
  EXPECT_EQ(
      render("{% set x = 0 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{% endfor %}{{ x }}"),
      "[0][0]0");
  EXPECT_EQ(render("{% for i in [1, 2, 3] %}{{ loop.index0 }}{{ loop.index }}{{ loop.revindex }}"
                   "{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "013TrueFalse3;122FalseFalse3;231FalseTrue3;");
  EXPECT_EQ(render("{% for i in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}"
                   "{% continue %}{% endif %}{{ i }}{% endfor %}"),
            "02");
  EXPECT_EQ(
      render(
          "{% for k, v in {'a': 1, 'b': 2}.items() if k != 'a' %}{{ k }}={{ v }}{{ loop.length }}"
          "{% endfor %}"),
      "b=21");
  EXPECT_EQ(
      render("{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}"),
      "[1B][23]");
  EXPECT_EQ(
      render("{% macro box() %}<{{ caller() }}>{% endmacro %}{% call box() %}in{% endcall %}"),
      "<in>");
}

TEST(Jinja, ExpressionsFiltersAndTests) {
  const json vars = {{"messages", json::array({{{"role", "system"}, {"content", " s "}},
                                               {{"role", "user"}, {"content", "u"}}})},
                     {"tools", nullptr}};
  EXPECT_EQ(
      render(
          "{{ messages[0].content | trim }}|{{ messages[1:] | length }}|{{ messages[-1]['role'] }}",
          vars),
      "s|1|user");
  EXPECT_EQ(render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') "
                   "| join(',') }}",
                   vars),
            "u");
  EXPECT_EQ(render("{{ messages | rejectattr('role', 'equalto', 'user') | list | length }}", vars),
            "1");
  EXPECT_EQ(
      render("{{ tools is defined }}{{ tools is none }}{{ nope is defined }}{{ 'a' is string }}"
             "{{ {} is mapping }}{{ 1 is number }}{{ true is boolean }}",
             vars),
      "TrueTrueFalseTrueTrueTrueTrue");
  // A test's one argument without parentheses may be a list or dict literal.
  EXPECT_EQ(render("{{ 1 is in [1, 2] }}{{ 3 is in [1, 2] }}{{ 'a' is in {'a': 1} }}"
                   "{{ 1 is not in [1] }}{{ x is in [1, 2] }}"),
            "TrueFalseTrueFalseFalse");
  EXPECT_EQ(render("{{ 'abc'[::-1] }}{{ 'héllo'[1:3] }}{{ 'x' ~ 1 ~ none }}{{ 'b' in 'abc' }}{{ 3 "
                   "not in [1] }}"),
            "cbaélx1NoneTrueTrue");
  EXPECT_EQ(render("{{ '' != false }}{{ 0 == false }}{{ 1 == 1.0 }}{{ {'a': 1, 'b': 2} == {'b': 2, "
                   "'a': 1} }}"),
            "TrueTrueTrueTrue");
  EXPECT_EQ(render("{{ ' a b '.strip() }}|{{ 'a,b'.split(',') }}|{{ 'hello world'.title() }}|{{ "
                   "'x'.upper() }}"
                   "|{{ 'abc'.startswith('ab') }}|{{ 'aXa'.replace('a', 'b') }}"),
            "a b|['a', 'b']|Hello World|X|True|bXb");
  EXPECT_EQ(
      render("{{ x | default('d') }}{{ 'yes' if 1 else 'no' }}{{ none or 'o' }}{{ 1 and 2 }}"),
      "dyes"
      "o2");
  EXPECT_EQ(render("{{ {'a': [1, 'é', none, true]} | tojson }}"),
            "{\"a\": [1, \"é\", null, true]}");
  EXPECT_EQ(render("{{ {'a': 1, 'b': []} | tojson(indent=2) }}"), "{\n  \"a\": 1,\n  \"b\": []\n}");
  EXPECT_EQ(render("{{ '<&>' | tojson }}"), "\"<&>\"");  // transformers' tojson: no HTML escapes
}

TEST(Jinja, ErrorsNameLineAndColumn) {
  const std::string bad = test::error_of([] { render("line one\n{{ 'a' + 1 }}"); });
  EXPECT_NE(bad.find("[jinja] t:2:"), std::string::npos) << bad;
  EXPECT_NE(bad.find("unsupported operand"), std::string::npos) << bad;
  const std::string syntax = test::error_of([] { render("{% if x %}\nno end"); });
  EXPECT_NE(syntax.find("t:1:"), std::string::npos) << syntax;
  EXPECT_NE(syntax.find("endif"), std::string::npos) << syntax;
  const std::string raised =
      test::error_of([] { render("\n  {{ raise_exception('Roles must alternate') }}"); });
  EXPECT_NE(raised.find("t:2:"), std::string::npos) << raised;
  EXPECT_NE(raised.find("template raised: Roles must alternate"), std::string::npos) << raised;
  const std::string sandbox = test::error_of([] { render("{% set l = [] %}{{ l.append(1) }}"); });
  EXPECT_NE(sandbox.find("not allowed"), std::string::npos) << sandbox;
  const std::string unknown = test::error_of([] { render("{{ x | nosuchfilter }}"); });
  EXPECT_NE(unknown.find("nosuchfilter"), std::string::npos) << unknown;
}

TEST(Jinja, TemplatesCannotRunForever) {
  // A loop that never ends (nested ranges) and recursion without a base case stop with errors.
  const std::string loop = test::error_of([] {
    jinja::RenderOptions options;
    options.limits.max_steps = 100000;  // the default (1,000,000) takes about a second
    jinja::Template(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "t")
        .render(json::object(), options);
  });
  EXPECT_NE(loop.find("steps"), std::string::npos) << loop;
  const std::string recursion =
      test::error_of([] { render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"); });
  EXPECT_NE(recursion.find("nests deeper"), std::string::npos) << recursion;
  const std::string nesting = test::error_of(
      [] { render("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"); });
  EXPECT_NE(nesting.find("nests deeper"), std::string::npos) << nesting;
  const std::string output = test::error_of([] {
    jinja::RenderOptions options;
    options.limits.max_output_bytes = 1000;
    jinja::Template("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", "t")
        .render(json::object(), options);
  });
  EXPECT_NE(output.find("1000 bytes"), std::string::npos) << output;
}

TEST(Jinja, StrftimeNowReadsTheFixedDate) {
  const jinja::RenderOptions options = fixture_date_options();
  EXPECT_EQ(jinja::Template("{{ strftime_now('%d %b %Y') }}", "t").render(json::object(), options),
            "05 Dec 2026");
  // The weekday and day of the year come from the date (2026-12-05 is a Saturday, day 339).
  EXPECT_EQ(jinja::Template("{{ strftime_now('%A %a %j') }}", "t").render(json::object(), options),
            "Saturday Sat 339");
}

// Every case of the transformers fixture, string for string.
TEST(Jinja, RendersEveryFixtureCaseAsTransformers) {
  const json fixture = json::parse(read_file(test::fixtures() / "chat_template_renders.json"));
  const jinja::RenderOptions options = fixture_date_options();
  std::map<std::string, json> templates;
  for (const auto& t : fixture["templates"]) templates[t["name"]] = t;
  std::map<std::string, json> conversations;
  for (const auto& c : fixture["conversations"]) conversations[c["name"]] = c["messages"];

  std::map<std::string, std::string> first_failure;  // template -> what went wrong first
  size_t cases_ok = 0;
  for (const auto& c : fixture["cases"]) {
    const std::string name = c["template"];
    const json& entry = templates.at(name);
    json variables = entry["tokens"];
    variables["messages"] = conversations.at(c["conversation"]);
    variables["add_generation_prompt"] = c["add_generation_prompt"];
    variables["tools"] = nullptr;
    variables["documents"] = nullptr;
    std::string problem;
    try {
      const std::string text = jinja::Template(entry["template"], name).render(variables, options);
      if (c.contains("error")) {
        problem = "rendered, transformers raised " + c["message"].get<std::string>();
      } else if (text != c["text"].get<std::string>()) {
        problem =
            "differs:\n--- ours\n" + text + "\n--- transformers\n" + c["text"].get<std::string>();
      }
    } catch (const Error& error) {
      if (!c.contains("error")) problem = std::string("raised ") + error.what();
    }
    const std::string where =
        " (" + c["conversation"].get<std::string>() +
        (c["add_generation_prompt"].get<bool>() ? ", generation prompt)" : ")");
    if (problem.empty()) {
      ++cases_ok;
    } else if (!first_failure.count(name)) {
      first_failure[name] = problem + where;
    }
  }
  const size_t n = templates.size();
  std::cout << (n - first_failure.size()) << " of " << n << " templates render identically ("
            << cases_ok << " of " << fixture["cases"].size() << " cases)\n";
  for (const auto& [name, problem] : first_failure) ADD_FAILURE() << name << ": " << problem;
}

}  // namespace
}  // namespace ll
