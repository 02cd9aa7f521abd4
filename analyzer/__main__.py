"""``python -m analyzer`` and the ``authtriage`` command."""

import gc


def run() -> None:
    """Import the CLI with the cyclic collector paused, then run it. The imports (pandas,
    pyarrow, typer, pydantic) create a few hundred thousand objects that live as long as
    the process and next to no garbage, yet set off collections that walk them all; frozen
    (as the collector's documentation advises for such objects), later ones skip them."""
    gc.disable()
    try:
        from .cli import main
    finally:
        gc.freeze()
        gc.enable()
    main()


if __name__ == "__main__":
    run()
