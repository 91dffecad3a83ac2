"""loopline core: domain, store, config, audit, auth, clock and the closed loop.

The bottom layer: imports none of console/, drivers/, ml/ and never textual.
"""
