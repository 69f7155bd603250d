"""What people do with runs: train one (runner) or many (batch: seeds, folds), search
(tune), report, diff, export, and the catalog of experiments with their runs.
"""
