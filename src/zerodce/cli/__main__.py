import sys

from zerodce.cli import main

sys.exit(main())
