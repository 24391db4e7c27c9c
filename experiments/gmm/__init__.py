"""The GMM-40 experiment (the paper's Sec. 4.2): `python -m experiments.gmm`."""
