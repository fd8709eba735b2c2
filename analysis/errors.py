"""The one exception type that means "the results directory is not what analysis expects".

`python -m analysis.report` catches `AnalysisError`, prints its message as a single line on
stderr and exits with code 2, without a traceback. Messages name the file and the column.
"""


class AnalysisError(Exception):
    """Bad input to the analysis: missing directory, missing file or column, unreadable Parquet."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line
