"""Device drivers: each knows one protocol and turns it into `controller.model.Sample`s."""
