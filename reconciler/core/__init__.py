"""The pure core: desired and actual state, essence + hash, diff, plan, rendering.

Values in, values out. Nothing here opens a file, a socket or a database.
"""
