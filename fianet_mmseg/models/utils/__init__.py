from .text_inputs import stack_text_inputs

__all__ = ['stack_text_inputs']
