"""Object storage backends behind one write-once contract (see ``base.ObjectStore``)."""
