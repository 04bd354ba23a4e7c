"""The ``fastlstm`` command line: ``python -m fastlstm <command> [options]``.

Commands
    demo    train an LSTM on the adding problem and check that it learned;
            ``demo NAME`` runs an example (adding, text, timeseries, speech)
    info    print the build/runtime configuration (fastlstm.show_config())
    bench   benchmark against torch.nn.LSTM and ONNX Runtime (fastlstm.tools.bench)

To add a command, write ``_add_<name>(subparsers)`` that creates its
subparser and sets ``run`` (parsed args -> exit code), and list it in
``COMMANDS``.  Import heavy modules inside ``run`` so that ``--help`` and
the other commands stay fast.
"""

import argparse
import sys


def _add_info(subparsers):
    p = subparsers.add_parser("info", help="print the build and runtime configuration")

    def run(args):
        import fastlstm

        fastlstm.show_config()
        return 0

    p.set_defaults(run=run)


def _add_bench(subparsers):
    from .tools import bench  # light: torch/onnx/onnxruntime are imported when it runs

    p = subparsers.add_parser(
        "bench",
        help="benchmark against torch and onnxruntime",
        description=bench.__doc__.split("\n\n")[0],
    )
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)


def _add_demo(subparsers):
    from .examples import EXAMPLES  # light: a table of names; each runs when chosen

    p = subparsers.add_parser(
        "demo",
        help="train an LSTM on the adding problem (the main job), or run an example",
        description="Without NAME: the adding problem (the main job). "
        "With NAME: one of the examples, each with --fast and --png PATH.",
    )
    p.add_argument("--length", type=int, default=50, help="sequence length T (default 50)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    names = p.add_subparsers(dest="example", metavar="NAME")
    for name, (module, text) in EXAMPLES.items():
        sub = names.add_parser(name, help=text, description=text)
        if name == "adding":
            sub.add_argument("--length", type=int, default=50, help="sequence length T")
            sub.add_argument("--steps", type=int, default=1000, help="training steps")
        else:
            _example_module(module).add_arguments(sub)

    def run(args):
        name = getattr(args, "example", None) or "adding"
        return _example_module(EXAMPLES[name][0]).main(args)

    p.set_defaults(run=run)


def _example_module(name):
    import importlib

    return importlib.import_module(name)


COMMANDS = (_add_demo, _add_info, _add_bench)


def main(argv=None):
    """Entry point of ``python -m fastlstm`` and the ``fastlstm`` script."""
    parser = argparse.ArgumentParser(
        prog="fastlstm", description="fastlstm: a compiled LSTM for numpy."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="command")
    subparsers.required = True
    for add in COMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
