"""The paper's experiments as drivers: sweeps of runs (``sweeps``), and the toy-tree, overlap-dynamics, figure
and demo drivers (``reproduce``). May import everything else in the package except the command line.
"""
