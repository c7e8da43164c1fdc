"""
snf-manage: the admin command line.
"""
