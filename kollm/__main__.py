import sys

from kollm.cli import main

# The guard matters: NeMo Run re-executes the launching __main__ module inside each task.
if __name__ == "__main__":
    sys.exit(main())
