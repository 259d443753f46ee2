"""`python3 -m bench`: the whole benchmark (see bench/suite.py)."""

from bench.suite import main

if __name__ == "__main__":
    main()
