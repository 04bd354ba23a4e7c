"""What the examples share: the command-line options and the optional plot."""

import sys


def add_common_arguments(parser):
    parser.add_argument(
        "--fast", action="store_true", help="a few epochs only (what CI runs), not the full run"
    )
    parser.add_argument(
        "--png", metavar="PATH", help="write the learning curve and predictions here (matplotlib)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def pyplot():
    """matplotlib.pyplot on a non-interactive backend, or None (with a note)
    when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; no PNG written (pip install matplotlib)")
        return None
    return plt


def save_figure(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"wrote {path}")


def fail(message):
    """Print why an example cannot run; the exit code for the command."""
    print(message, file=sys.stderr)
    return 2
