"""What a file is: media type, readability (見読性) measurements, active content."""
