"""A refused launch or read: a message for the user and a short code for the log. Neither
ever carries patient data."""


class SmartError(Exception):
    def __init__(self, code: str, message: str, *, status: int = 400):
        self.code = code
        self.message = message
        self.status = status
        super().__init__(f"{code}: {message}")
