"""loopline core: domain, store, config, events, audit, auth, clock and the closed loop.

The bottom layer: imports none of console/, runtime/, drivers/, ml/, sim/ and never textual.
"""
