"""Sweeps: cocktail x fraction x seed grids on Ray Tune (`raysys sweep`)."""
