"""The model-predictive scheduler, in two layers: a plan solved ahead (a linear program over the
next hours, re-planned every 15 min and on a disturbance) sets targets; the reactive rules keep
enforcing limits every cycle and decide alone whenever there is no valid plan."""
