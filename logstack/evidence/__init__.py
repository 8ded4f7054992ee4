"""What an auditor reads: status of the fleet, the periodic report, sealing and verification."""
