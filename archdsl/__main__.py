"""``python -m archdsl``: the command line (see ``archdsl.cli``)."""
from .cli import main

raise SystemExit(main())
