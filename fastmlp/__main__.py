import sys

from fastmlp._cli import main

sys.exit(main())
