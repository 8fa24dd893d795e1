"""The ``msp`` command line: one entry, subcommands dispatched lazily to each package's ``main``.

Heavy packages (torch, detectron2, Beam, spaCy) are imported only by the subcommand that needs
them, so ``msp --help`` and ``msp sample`` start fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

# subcommand -> (module, function, one-line help). Each function takes argv (list[str]).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "sample": ("corpora.sample", "main", "write the embedded sample corpus"),
    "demo": ("train.demo", "main", "run every stage on the sample corpus and write a report"),
    "extract": ("extract.cli", "main", "detectron2 RoI features to WebDataset shards"),
    "export": (
        "extract.export",
        "main",
        "LXMERT TSV <-> feature shards (msp export lxmert-tsv ...)",
    ),
    "train": ("train.cli", "train_main", "multi-stage pre-training from a YAML config"),
    "eval": ("train.cli", "eval_main", "evaluation (msp eval retrieval ...)"),
}
# msp pipeline <job> -> module with run(argv)
PIPELINE_JOBS: dict[str, tuple[str, str]] = {
    "lait": ("pipeline.lait", "filtered web image-text pairs (ImageBERT's LAIT)"),
    "phrases": ("pipeline.phrases", "Visual Genome phrases without verbs (MSP stage P)"),
    "concepts": ("pipeline.concepts", "scene-graph phrase concepts and their vocabulary (MVPTR)"),
    "captions": ("pipeline.captions", "caption tables with splits and provenance (stage S)"),
    "token-labels": ("pipeline.token_labels", "detector labels as stage-T text"),
    "hard-negatives": ("pipeline.hard_negatives", "top-M most similar images per image"),
}


def _usage() -> str:
    lines = ["usage: msp <command> [options]", "", "commands:"]
    for name, (_, _, text) in COMMANDS.items():
        lines.append(f"  {name:<16}{text}")
    lines.append(f"  {'pipeline':<16}Beam jobs: msp pipeline <job> --help")
    for name, (_, text) in PIPELINE_JOBS.items():
        lines.append(f"    {name:<14}{text}")
    return "\n".join(lines)


def _pipeline(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    job, rest = argv[0], argv[1:]
    if job not in PIPELINE_JOBS:
        print(
            f"msp pipeline: unknown job {job!r}; one of {', '.join(PIPELINE_JOBS)}", file=sys.stderr
        )
        return 2
    module = importlib.import_module(PIPELINE_JOBS[job][0])
    return int(module.run(rest) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "pipeline":
        return _pipeline(rest)
    if command not in COMMANDS:
        print(f"msp: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func, _ = COMMANDS[command]
    module = importlib.import_module(module_name)
    return int(getattr(module, func)(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
