"""The cross-family comparison (notebook 09): the fair setup, its statistics, and our runs beside the papers'."""
