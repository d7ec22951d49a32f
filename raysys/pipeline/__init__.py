"""The study pipeline: SFT -> DPO (gated) -> synthesis rounds, one resumable job."""
