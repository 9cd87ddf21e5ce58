"""eapo: token-level credit assignment by reward polarity and token entropy for RLVR."""

__version__ = "0.1.0"
