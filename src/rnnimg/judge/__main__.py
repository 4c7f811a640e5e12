import sys

from rnnimg.judge.cli import main

sys.exit(main())
