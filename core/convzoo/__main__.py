"""``python -m convzoo`` runs the command-line interface."""
from convzoo.cli import main

main()
