"""`python -m mnist_tui`: the same as the `mnist-tui` command."""

from mnist_tui.cli import main

if __name__ == "__main__":
    main()
