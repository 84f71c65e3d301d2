#!/usr/bin/env python3
"""Conformance fixtures for Tessera's Jinja interpreter, rendered by Python's jinja2 as
Hugging Face transformers renders chat templates (ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and loopcontrols; tojson as json.dumps(ensure_ascii=False);
raise_exception and strftime_now as globals, strftime_now at a fixed time in UTC).

Cases: feature snippets, and the real templates in tests/data (tokenizer folders, the
published ones in tests/data/chat_templates) on conversations with and without a system
message. Each case records jinja2's output, or that jinja2 raised.

Needs: pip install jinja2
Usage: python3 tools/golden/make_jinja_fixtures.py  (writes tests/data/chat_templates/conformance.json)
"""
import datetime
import importlib.metadata
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DATA = os.path.join(ROOT, "tests", "data")
NOW = 1733300000  # 2024-12-04 08:13:20 UTC


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


MSGS = [{"role": "user", "content": "Hi"}]
# Feature snippets: (name, template, context).
SNIPPETS = [
    ("text", "plain text, no tags\n", {}),
    ("output", "{{ 'a' }}{{ 1 }}{{ 1.5 }}{{ none }}{{ true }}{{ x }}|{{ [1, 'a', none] }}{{ {'k': 1} }}", {}),
    ("floats", "{{ 1.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 2.5e-10 }} {{ 1e16 }} {{ 123456789.0 }} {{ 4 / 2 }}", {}),
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 3 * 'ab' }} {{ 1 + 2 * 3 - 4 }} {{ -(2) }} {{ 7.5 // 2 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ x }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}", {}),
    ("compare", "{{ 1 == 1.0 }}{{ 'a' < 'b' }}{{ 'a' in 'abc' }}{{ 'k' in {'k': 1} }}{{ 2 in [1, 2] }}{{ 3 not in [1] }}{{ [1, 2] < [1, 3] }}", {}),
    ("logic", "{{ 1 and 'x' }}|{{ 0 or 'y' }}|{{ not 0 }}|{{ 'a' if x else 'b' }}|{{ 'a' if true }}|{{ none or [] }}", {}),
    ("whitespace", "  {% if true %}\n  x\n  {% endif %}\nend\n{%- if true -%}\n  y  \n{%- endif %}\n  {{- 'z' -}}  \n w", {}),
    ("lstrip_plus", "  {%+ if true %}x{% endif %}\n  {# c #}\ny", {}),
    ("comment", "a{# a comment {{ x }} #}b\n{# at line start #}\nc", {}),
    ("for_loop", "{% for m in ms %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ m }};{% endfor %}", {"ms": ["a", "b", "c"]}),
    ("for_filter_else", "{% for m in ms if m != 'x' %}{{ loop.index }}{{ m }}{{ loop.last }}{% else %}none{% endfor %}|{% for m in [] %}x{% else %}empty{% endfor %}", {"ms": ["a", "x", "b"]}),
    ("for_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_scope", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 1 %}{{ x }};{% endfor %}{{ x }}", {}),
    ("loop_controls", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_items", "{% for i in [10, 20, 30] %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}", {}),
    ("namespace", "{% set ns = namespace(a=1, found=false) %}{% for i in [1, 2] %}{% set ns.a = ns.a + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.a }}{{ ns.found }}", {}),
    ("set_block", "{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]", {}),
    ("set_tuple", "{% set a, b = [1, 2] %}{{ a }}{{ b }}", {}),
    ("if_elif", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("macro", "{% macro f(a, b=2) %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(1, b=3) }}{{ f(a=4) }}", {}),
    ("filters_str", "{{ '  x  '|trim }}|{{ 'ab'|upper }}|{{ 'AB'|lower }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'aXbX'|replace('X', '-') }}|{{ 'abc'|length }}|{{ 'é'|length }}|{{ 'xxyxx'|trim('x') }}", {}),
    ("filters_seq", "{{ [3, 1, 2]|first }}{{ [3, 1, 2]|last }}{{ [1, 2]|length }}{{ ['a', 'b']|join('-') }}{{ [1, 2]|join }}{{ [3, 1, 2]|sort }}{{ [1, 2, 3]|reverse|list }}{{ 'abc'|reverse }}{{ [1, 1, 2]|unique|list }}{{ [1, 2, 3]|sum }}{{ [4, 2]|min }}{{ [4, 2]|max }}", {}),
    ("filters_default", "{{ x|default('d') }}{{ ''|default('e') }}{{ ''|default('f', true) }}{{ 0|d('g', true) }}{{ none|default('h') }}", {}),
    ("filters_conv", "{{ '12'|int + 1 }}{{ 'x'|int }}{{ 3.9|int }}{{ '2.5'|float }}{{ 5|string ~ 'a' }}{{ -3|abs }}{{ 2.567|round(2) }}{{ 2.5|round }}", {}),
    ("filters_attr", "{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(',') }}|{{ ms|rejectattr('role', 'equalto', 'user')|list|length }}|{{ ms|map(attribute='role')|list }}|{{ [1, 0, 2]|select|list }}|{{ ['a', 'B']|map('upper')|list }}",
     {"ms": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}),
    ("tojson", "{{ {'a': 'é<\"\\n', 'b': [1, 2.5, none, true], 'c': {}} | tojson }}|{{ [1, {'x': []}] | tojson(indent=2) }}|{{ 'x'|tojson }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}", {}),
    ("indent", "{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(3, true) }}", {}),
    ("tests", "{{ 'a' is string }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ [1] is iterable }}{{ 'a' is iterable }}{{ {} is mapping }}{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is lower }}{{ true is true }}{{ 1 is not string }}{{ 'x' is in 'xy' }}{{ 2 is eq 2 }}{{ 3 is gt 2 }}", {}),
    ("string_methods", "{{ ' a '.strip() }}|{{ 'xa'.lstrip('x') }}|{{ 'ax '.rstrip() }}|{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'ab'.upper() }}{{ 'AB'.lower() }}|{{ 'aXb'.replace('X', 'y') }}|{{ 'abcb'.find('b') }}{{ 'abcb'.rfind('b') }}{{ 'abcb'.count('b') }}|{{ '-'.join(['a', 'b']) }}|{{ 'a\nb'.splitlines() }}|{{ '12'.isdigit() }}|{{ 'hello world'.title() }}", {}),
    ("dict_methods", "{{ d.get('a') }}{{ d.get('z', 'none') }}{{ d.get('z') }}{{ d.keys()|list }}{{ d.values()|list }}{{ d['a'] }}{{ d.a }}{{ d.missing }}|{{ d.items()|list }}", {"d": {"a": 1, "b": "x"}}),
    ("subscripts", "{{ 'abc'[0] }}{{ 'abc'[-1] }}{{ [1, 2, 3][1:] }}{{ [1, 2, 3][:-1] }}{{ 'abcdef'[1:4] }}{{ 'abc'[::-1] }}{{ [1, 2, 3, 4][::2] }}{{ [1, 2][5] }}{{ ms[0]['role'] }}{{ ms[0].content }}{{ ms[-1].content }}", {"ms": MSGS}),
    ("literals", "{{ [1, 2, ] }}{{ (1, 2) }}{{ {'a': 1, 'a': 2} }}{{ 'a' 'b' }}{{ \"dq'\" }}{{ 'sq\\'' }}{{ 'tab\\tx' }}{{ 1_000 }}", {}),
    ("range", "{{ range(3)|list }}{{ range(1, 4)|list }}{{ range(5, 0, -2)|list }}", {}),
    ("strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}", {}),
    ("unicode", "{{ 'héllo'|upper }}|{{ 'é' ~ '✓' }}|{% for c in 'aé✓' %}[{{ c }}]{% endfor %}", {}),
    ("raise", "{% if ms|length > 0 %}{{ raise_exception('no messages allowed') }}{% endif %}", {"ms": MSGS}),
    ("undefined_attr_error", "{{ x.y }}", {}),
    ("add_error", "{{ 'a' + 1 }}", {}),
]

CONVERSATIONS = {
    "system_multi_turn": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "  And of Italy?\n"},
    ],
    "no_system": [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi. How can I help?"},
        {"role": "user", "content": "Tell me a joke about <|im_start|> tokens."},
    ],
}

# Templates: (name, file relative to tests/data, loader, special tokens).
TEMPLATES = [
    ("smollm2", "chat_templates/smollm2.jinja", "text", {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}),
    ("qwen3", "tokenizers/qwen3/tokenizer_config.json", "hf", None),
    ("llama3", "tokenizers/llama3/tokenizer_config.json", "hf", None),
    ("gemma3", "chat_templates/gemma3.jinja", "text", {"bos_token": "<bos>", "eos_token": "<eos>"}),
    ("llama31", "chat_templates/llama31.jinja", "text", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    ("mistral", "chat_templates/mistral.jinja", "text", {"bos_token": "<s>", "eos_token": "</s>"}),
    ("deepseek_v3", "chat_templates/deepseek_v3.jinja", "text",
     {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}),
]


def token_text(t):
    return t["content"] if isinstance(t, dict) else t


def main():
    env = environment()
    cases = []

    def render(name, context, template=None, template_file=None):
        text = template if template is not None else open(os.path.join(DATA, template_file)).read()
        case = {"name": name, "context": context}
        if template is not None:
            case["template"] = template
        else:
            case["template_file"] = template_file
        try:
            case["output"] = env.from_string(text).render(**context)
        except Exception as e:  # jinja2 refused: Tessera must refuse too
            case["error"] = f"{type(e).__name__}: {e}"
        cases.append(case)

    for name, template, context in SNIPPETS:
        render(name, context, template=template)
    for name, path, loader, specials in TEMPLATES:
        full = os.path.join(DATA, path)
        if not os.path.exists(full):
            print("missing", path)
            continue
        if loader == "hf":
            cfg = json.load(open(full))
            template_file = f"chat_templates/{name}.jinja"
            with open(os.path.join(DATA, template_file), "w") as f:
                f.write(cfg["chat_template"])
            specials = {"bos_token": token_text(cfg.get("bos_token") or ""),
                        "eos_token": token_text(cfg.get("eos_token") or "")}
        else:
            template_file = path
        for conv_name, messages in CONVERSATIONS.items():
            for gen in (True, False):
                context = {"messages": messages, "add_generation_prompt": gen, **specials}
                render(f"{name}/{conv_name}/{'gen' if gen else 'nogen'}", context,
                       template_file=template_file)
    out = os.path.join(DATA, "chat_templates", "conformance.json")
    with open(out, "w") as f:
        json.dump({"tool": f"jinja2=={importlib.metadata.version('jinja2')}", "now": NOW,
                   "cases": cases}, f, indent=1, ensure_ascii=False)
    for c in cases:
        print(c["name"], "ERROR " + c["error"] if "error" in c else repr(c["output"])[:100])


if __name__ == "__main__":
    main()
