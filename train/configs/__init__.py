"""Shipped trainer configs (YAML): msp.yaml (full LXMERT-S), demo.yaml (reduced, CPU)."""
