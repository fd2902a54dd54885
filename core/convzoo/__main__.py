"""``python -m convzoo`` runs the command-line interface."""
from convzoo.cli.app import main

main()
