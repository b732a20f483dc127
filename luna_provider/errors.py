"""Luna error codes and the exception that carries them.

Codes and messages follow the public Luna error index; codes marked *designed* are ours, for cases
the public record does not cover, numbered in the free part of the Tasks service range.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR_LINK = "https://docs.visionlabs.ai/info/luna/troubleshooting/errors-description/code-{code}"


@dataclass(frozen=True)
class ErrorKind:
    """A Luna error code with its message template and HTTP status."""

    code: int
    desc: str
    detail: str
    status: int

    def __call__(self, *args: object) -> LunaError:
        """Build the exception, formatting the detail template with ``args``."""
        return LunaError(self, self.detail.format(*args) if args else self.detail)


class LunaError(Exception):
    """An error reported to the client (or recorded for a task) as a Luna error body."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail

    @property
    def error_code(self) -> int:
        return self.kind.code

    @property
    def status(self) -> int:
        return self.kind.status

    def body(self) -> dict[str, object]:
        """Return the Luna error body."""
        return {
            "error_code": self.kind.code,
            "desc": self.kind.desc,
            "detail": self.detail,
            "link": ERROR_LINK.format(code=self.kind.code),
        }


UNKNOWN_ERROR = ErrorKind(1, "Internal server error", "Unknown error", 500)
BAD_INPUT = ErrorKind(12031, "Bad/incomplete input data", "Bad/incomplete input data. {}", 400)
EMPTY_JSON = ErrorKind(12005, "Bad/incomplete input data", "Request contains empty json", 400)
JSON_VALIDATION = ErrorKind(
    12022, "Bad/incomplete input data", "Failed to validate input json. Path: '{}',  message: '{}'", 400
)
BAD_CONTENT_TYPE = ErrorKind(
    12023, "Bad/incomplete input data", "Content type is unacceptable, allowed types: '{}'", 400
)
BAD_QUERY_PARAM = ErrorKind(12012, "Bad/incomplete input data", "Bad query parameters '{}'", 400)
BAD_HEADER = ErrorKind(12016, "Bad/incomplete input data", "Bad header '{}': {}", 400)
PAGE_NOT_FOUND = ErrorKind(12001, "Resource not found", "Page not found", 404)
METHOD_NOT_ALLOWED = ErrorKind(12002, "Method not allowed", "Method not allowed", 405)
BODY_TOO_LARGE = ErrorKind(12030, "Request entity too large", "Request body is larger than {} bytes", 413)
NOT_ACCEPTABLE = ErrorKind(12024, "Not acceptable", "Accept header is unacceptable, allowed: '{}'", 406)

TASK_WORKERS_UNREACHABLE = ErrorKind(
    28000, "Network error", "Can not send subtasks to tasks workers. Reason: {}", 500
)
TASK_NOT_FOUND = ErrorKind(28001, "Object not found", "Task with id '{}' not found", 404)
TASK_ERROR_NOT_FOUND = ErrorKind(28003, "Object not found", "Task error with id '{}' not found", 404)
TASK_PROGRESS_FAILED = ErrorKind(28008, "Internal server error", "Failed to update task progress", 500)
REPORT_BAD_STATUS = ErrorKind(
    28015, "Bad/incomplete input data", "Tasks with status '{}' does not support building a report", 400
)
REPORT_NO_RESULT = ErrorKind(
    28016, "Bad/incomplete input data", "Clusterization task without result does not support report", 400
)
RESULT_NOT_FOUND = ErrorKind(28017, "Object not found", "Result of task '{}' not found", 404)
RESULT_NOT_READY = ErrorKind(28018, "Object not found", "Task '{}' does not have result yet", 404)
CANNOT_CANCEL = ErrorKind(
    28019, "Bad/incomplete input data", "Task '{}' with status {} can not be cancelled", 400
)
RESULT_BAD_STATUS = ErrorKind(
    28020, "Object not found", "Impossible to get result of task {} with status {}", 404
)
TASK_CANCELLED = ErrorKind(28025, "Task cancelled", "Task '{}' has been cancelled", 400)
SCHEDULE_NOT_FOUND = ErrorKind(28040, "Object not found", "Schedule with id {} not found", 404)
LIST_NOT_FOUND = ErrorKind(22003, "Object not found", "List '{}' not found", 404)

# designed: the public record has no code for these
TASK_TYPE_UNAVAILABLE = ErrorKind(
    28041, "Forbidden", "Task type '{}' is not available in this deployment", 403
)
TASK_FAILED = ErrorKind(28042, "Task failed", "Task failed: {}", 500)
DESCRIPTOR_VERSION_UNKNOWN = ErrorKind(
    28043, "Bad/incomplete input data", "Descriptor version {} is not supported", 400
)
TASK_RUN_LOST = ErrorKind(28044, "Task failed", "The run of task {} was lost: {}", 500)
SERVICE_UNAVAILABLE = ErrorKind(28045, "Service unavailable", "Dependency unavailable: {}", 502)

# designed: exporter and reporter (28070-28079)
REPORT_NOT_CLUSTERING = ErrorKind(
    28070,
    "Bad/incomplete input data",
    "Task '{}' is not a clustering task and does not support a report",
    400,
)
REPORT_COLUMNS_NOT_APPLICABLE = ErrorKind(
    28071, "Bad/incomplete input data", "Columns {} do not apply to a report on {}", 400
)
EXPORT_SAMPLE_NOT_FOUND = ErrorKind(
    28072, "Object not found", "Sample '{}' of object '{}' not found in the object store", 404
)
REPORT_SOURCE_UNREADABLE = ErrorKind(
    28073, "Internal server error", "Result of clustering task '{}' cannot be read: {}", 500
)
EXPORT_BAD_DELIMITER = ErrorKind(
    28074, "Bad/incomplete input data", "CSV delimiter {!r} is not allowed: {}", 400
)
# designed: cross-match and ROC tasks (28050-28059)
MARKUP_OBJECT_NOT_FOUND = ErrorKind(
    28050, "Object not found", "Markup object '{}' not found, or it has no {} descriptor of version {}", 404
)
MARKUP_DUPLICATE_OBJECT = ErrorKind(
    28051, "Bad/incomplete input data", "Object '{}' appears more than once in the markup", 400
)
ROC_UNDEFINED = ErrorKind(28052, "Bad/incomplete input data", "The ROC curve is undefined: {}", 400)
DESCRIPTOR_TYPE_UNAVAILABLE = ErrorKind(
    28053, "Bad/incomplete input data", "Descriptor type '{}' is not available for {}", 400
)
MARKUP_OBJECTS_NOT_FOUND = ErrorKind(
    28054, "Object not found", "{} more markup objects not found (not listed one by one)", 404
)
# designed, linker and garbage collection (28060-28069)
LINKER_NO_FACE_DESCRIPTOR = ErrorKind(
    28060, "Bad/incomplete input data", "Event '{}' has no face descriptor; no face was created from it", 400
)
FILTER_ACCOUNT_MISMATCH = ErrorKind(
    28061,
    "Bad/incomplete input data",
    "Filter account_id '{}' differs from the account of the request '{}'",
    400,
)
SAMPLE_FILE_NOT_DELETED = ErrorKind(
    28062, "Internal server error", "File '{}' of removed sample '{}' could not be deleted: {}", 500
)
# designed, faces (28080-28099): the estimator and additional extract tasks
SOURCE_UNREACHABLE = ErrorKind(28080, "Source unavailable", "Image source cannot be read: {}", 400)
IMAGE_UNREADABLE = ErrorKind(28081, "Bad/incomplete input data", "Image '{}' cannot be decoded: {}", 400)
NO_FACES_FOUND = ErrorKind(28082, "No faces found", "No face found in image '{}'", 400)
SOURCE_FILE_FAILED = ErrorKind(
    28083, "Source unavailable", "File '{}' cannot be read from the source: {}", 400
)
HANDLERS_UNAVAILABLE = ErrorKind(
    28084,
    "Forbidden",
    "Handlers are not available in this deployment: give inline 'policies' instead of handler_id '{}'",
    403,
)
IMAGE_TOO_LARGE = ErrorKind(
    28085, "Bad/incomplete input data", "Image '{}' has {} bytes, more than the limit of {} bytes", 400
)
SOURCE_NOT_ALLOWED = ErrorKind(
    28086,
    "Forbidden",
    "Path '{}' is outside the folders the estimator may read (LUNA_ESTIMATOR_LOCAL_ROOTS)",
    403,
)
SAMPLE_UNREADABLE = ErrorKind(28087, "Object not found", "Sample '{}' of {} cannot be read: {}", 404)
SOURCE_UNSUPPORTED = ErrorKind(
    28088, "Not implemented", "Source type '{}' needs the Python package '{}': pip install {}", 501
)
FACE_ENGINE_FAILED = ErrorKind(28089, "Internal server error", "Face engine failed on '{}': {}", 500)
