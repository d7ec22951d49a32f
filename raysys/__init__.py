"""raysys: distributed LoRA fine-tuning, label synthesis and sweeps on Ray.

Importing this package stays light: Ray, torch and transformers are imported
inside the functions that need them.
"""

__version__ = "0.1.0"
