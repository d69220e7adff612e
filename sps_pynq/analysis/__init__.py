"""Analyses of packed and pruned models: energy per inference measured through a Session (energy.py, torch-free)
and modelled from the descriptors and the cycle model (energy_model.py, torch-free), storage of the weights and
their index under other sparse formats (storage.py, workstation), DDR traffic against the minimum (traffic.py)."""
