"""The model-predictive scheduler, in two layers: a plan solved ahead (a linear program over the
next hours: battery, EV sessions, thermal tanks, the grid and its tariff) sets targets, and the
reactive rules keep enforcing limits every cycle and absorb what the forecast got wrong.

`problem` holds the model's data (no solver import), `lp` solves it with HiGHS."""
