"""What the results say: frontier, statistics, tables, Plotly report.

Pure pandas / numpy / scipy / plotly; never imports torch or ray, nor `sweep` or `trainers`.
`load(results_dir)` -> {'points', 'routes', 'decisions': DataFrame, 'manifest': dict}.
"""
from analysis.errors import AnalysisError
from analysis.io import load

__all__ = ["AnalysisError", "load"]
