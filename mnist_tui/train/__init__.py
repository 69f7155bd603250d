"""Training: decisions made once (setup), the step engines (eager or CUDA graph), the
loop (trainer) and its events. Imports torch.
"""
