"""Tricky stack-file values: the text after `key:` and the string the program receives for it.

The expectations are what the real Pulumi CLI (v3.274) passes on; tests/e2e/test_stack_yaml_cli.py
checks every row against it, tests/test_stack_yaml.py against the offline reader.
"""

SCALARS: list[tuple[str, str]] = [
    ("010", "8"),                    # legacy octal (yaml.v3), where YAML 1.1 readers also give 8
    ("0o10", "8"),
    ("09", "9"),                     # not octal: read as a float
    ("00", "0"),
    ("-0", "0"),
    ("+5", "5"),
    ("0x1F", "31"),
    ("-0x10", "-16"),
    ("0b101", "5"),
    ("1_000", "1000"),
    ("0x_1F", "31"),
    ("12345678901234567890", "12345678901234567890"),
    ("1.0", "1"),
    (".5", "0.5"),
    ("1e3", "1000"),
    ("0.1e1", "1"),
    ("1e21", "1e+21"),
    ("1.5e-7", "1.5e-7"),
    ("1:00:00", "1:00:00"),          # YAML 1.1 reads 3600
    ("yes", "yes"),                  # YAML 1.1 reads true
    ("Yes", "Yes"),
    ("on", "on"),
    ("off", "off"),
    ("True", "true"),
    ("FALSE", "false"),
    ("~", ""),
    ("null", ""),
    ("2024-01-01", "2024-01-01 00:00:00 +0000 UTC"),
    ("2024-01-01T10:00:00Z", "2024-01-01 10:00:00 +0000 UTC"),
    ("2001-12-14 21:59:43.10 -5", "2001-12-14 21:59:43.10 -5"),
    ("0o", "0o"),
    ("'010'", "010"),
    ('"yes"', "yes"),
    ("!!binary aGVsbG8=", "hello"),
]

# Maps and lists reach the program as JSON; compared after json.loads.
STRUCTURED: list[tuple[str, object]] = [
    ("{masters: 010, cni: yes, t: 1:00:00, n: ~, b: True, h: 0x10, u: 1_000}",
     {"masters": 8, "cni": "yes", "t": "1:00:00", "n": None, "b": True, "h": 16, "u": 1000}),
    ("{a: 1.0, b: 1e3, c: 12345678901234567890, d: 1.5}",
     {"a": 1, "b": 1000, "c": 12345678901234567000, "d": 1.5}),
    ("[010, yes, '1:00', 2024-01-01]", [8, "yes", "1:00", "2024-01-01 00:00:00 +0000 UTC"]),
    ("{1: x, true: y}", {"1": "x", "true": "y"}),
]

# Refused by the CLI and by the offline reader alike: (stack-file body under `config:`, a word of the error).
REFUSED: list[tuple[str, str]] = [
    ("  echo-config:a: 1\n  echo-config:a: 2\n", "already defined"),
    ("  echo-config:o:\n    k: 1\n    k: 2\n", "already defined"),
    ("  echo-config:a: .nan\n", "NaN"),
    ("  echo-config:a: -.inf\n", "Inf"),
]
