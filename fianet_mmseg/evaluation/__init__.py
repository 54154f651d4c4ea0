"""Evaluation metrics."""
from .refseg_metric import RefSegMetric

__all__ = ['RefSegMetric']
