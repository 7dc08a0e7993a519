import sys
from pathlib import Path

# tests import the slow reference implementations as plain modules
sys.path.insert(0, str(Path(__file__).parent))
