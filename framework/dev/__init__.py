"""Tools for developing a bot: the tunnel that forwards smee.io deliveries to a local bot."""
