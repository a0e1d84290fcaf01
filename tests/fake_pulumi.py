"""TEST DOUBLE of the `pulumi` CLI, for tests/test_deploy.py. It never deploys anything.

The test installs this file as an executable named `pulumi` first on PATH. It answers exactly the
invocations the Automation API of pulumi 3.272 makes for `tools.deploy` (see
pulumi/automation/_local_workspace.py and _stack.py):

    pulumi version                                                       -> "v3.272.0"
    pulumi --non-interactive stack select --stack S
    pulumi --non-interactive stack history --json --show-secrets [--page-size N --page P] --stack S
    pulumi --non-interactive stack output --json [--show-secrets] --stack S
    pulumi --non-interactive preview --policy-pack policies --exec-kind auto.local
           --event-log tcp://127.0.0.1:PORT --stack S
    pulumi --non-interactive up --yes --skip-preview --policy-pack policies --message M
           --exec-kind auto.local --stack S

with stored responses (tests/fixtures/pulumi_cli/*.json) shaped like the real CLI's: the JSON of
`stack history --json`, and for preview/up the exit code, stdout, stderr and the engine events that
the CLI streams to the Automation API's gRPC event server (`pulumirpc.Events/StreamEvents`).

Environment:
    FAKE_PULUMI_LOG       JSON-lines file: one record per invocation (argv, cwd, the stack file's text)
    FAKE_PULUMI_FIXTURES  the folder of stored responses
    FAKE_PULUMI_SCENARIO  JSON: {"preview": [names], "up": [names], "history": [names]}; the n-th call of
                          preview/up answers with the n-th name (the last repeats); the history answered
                          is the one at index "number of `up` calls so far" (state changes only on up)
    FAKE_PULUMI_VARS      JSON: {"NAME": "value"} substituted for ${NAME} in the stored responses
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from string import Template

VERSION = "v3.272.0"


def _records(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _fixture(name: str) -> dict | list:
    folder = Path(os.environ["FAKE_PULUMI_FIXTURES"])
    variables = json.loads(os.environ.get("FAKE_PULUMI_VARS", "{}"))
    text = Template((folder / f"{name}.json").read_text()).substitute(variables)
    return json.loads(text)


def _pick(names: list[str], index: int) -> str:
    return names[min(index, len(names) - 1)]


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _protobuf_string_field_1(text: str) -> bytes:
    """EventRequest{string event = 1} in protobuf wire format (tag 0x0a, varint length, utf-8)."""
    data = text.encode()
    length, prefix = len(data), bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        prefix.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x0a" + bytes(prefix) + data


def _send_events(target: str, events: list[dict]) -> None:
    lines = [json.dumps(event) for event in events]
    if target.startswith("tcp://"):
        import grpc  # the Automation API's own dependency

        with grpc.insecure_channel(target.removeprefix("tcp://")) as channel:
            stream = channel.stream_unary("/pulumirpc.Events/StreamEvents",
                                          request_serializer=_protobuf_string_field_1,
                                          response_deserializer=bytes)  # google.protobuf.Empty
            stream(iter(lines), timeout=10)
    else:  # CLIs up to 3.205 write a file the Automation API polls
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in lines)


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--non-interactive"]
    log = Path(os.environ["FAKE_PULUMI_LOG"])
    earlier = _records(log)
    stack = _option(args, "--stack")
    stack_file = Path.cwd() / f"Pulumi.{stack}.yaml"
    record = {"argv": args, "cwd": os.getcwd(),
              "stack_file": stack_file.read_text() if stack and stack_file.exists() else None,
              "venv": (Path.cwd() / ".venv").exists(),
              "policy_venv": (Path.cwd() / "policies" / "venv").exists()}
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")

    scenario = json.loads(os.environ.get("FAKE_PULUMI_SCENARIO", "{}"))
    ups_so_far = sum(1 for r in earlier if r["argv"][:1] == ["up"])
    if args == ["version"]:
        print(VERSION)
        return 0
    if args[:2] == ["stack", "select"]:
        return 0
    if args[:2] == ["stack", "history"] and "--json" in args:
        entries = _fixture(_pick(scenario["history"], ups_so_far))
        size = _option(args, "--page-size")
        if size:
            page = int(_option(args, "--page") or 1)
            entries = entries[(page - 1) * int(size):page * int(size)]
        print(json.dumps(entries, indent=4))
        return 0
    if args[:2] == ["stack", "output"] and "--json" in args:
        print("{}")
        return 0
    if args[:1] in (["preview"], ["up"]):
        command = args[0]
        calls = sum(1 for r in earlier if r["argv"][:1] == [command])
        response = _fixture(_pick(scenario[command], calls))
        if command == "preview" and "--event-log" in args:
            _send_events(_option(args, "--event-log"), response.get("events", []))
        sys.stdout.write(response.get("stdout", ""))
        sys.stderr.write(response.get("stderr", ""))
        return int(response.get("exit", 0))
    sys.stderr.write(f"error: fake pulumi has no answer for: pulumi {' '.join(args)}\n")
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
