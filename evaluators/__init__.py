"""Judging programs: proxy tasks, the training engine, fitness (not built yet).

Never imports Ray or search/.
"""
