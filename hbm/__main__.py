import sys

from hbm.cli import main

sys.exit(main())
