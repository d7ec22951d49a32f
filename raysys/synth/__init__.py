"""Label synthesis and preference-pair mining from model generations."""
