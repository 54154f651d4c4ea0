from .tmem import TMEM, ScaleAwareGate, TextAwareBlock

__all__ = ['TMEM', 'ScaleAwareGate', 'TextAwareBlock']
