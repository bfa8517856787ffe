"""The cells: each module holds one cell's spec and its layer class."""
