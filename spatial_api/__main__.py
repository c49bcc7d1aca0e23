"""``python -m spatial_api`` runs the ``cityhex`` command line."""

from spatial_api.cli import main

main()
