import sys

from tokcore.cli import main

sys.exit(main())
