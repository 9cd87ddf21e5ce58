"""Tasks: where problems come from, how prompts are built, how answers are extracted and verified.

```python
from eapo.tasks import TaskConfig, load_task, build_prompt, score_completions
task = load_task(TaskConfig(source="chain_sum", params={"max_terms": 2, "max_digits": 1}))
prompt = build_prompt(task.train[0], tokenizer, task.config)
result = score_completions(completions, problems, task)  # result.rewards: 0/1 per completion
```
"""

from eapo.tasks.config import TaskConfig
from eapo.tasks.extraction import (
    extract_answer,
    format_rate,
    last_number,
    parse_number,
    strict_answer,
)
from eapo.tasks.loading import load_task
from eapo.tasks.problem import Problem, Task
from eapo.tasks.prompts import DEFAULT_SYSTEM_PROMPTS, build_prompt, reference_completion, system_prompt
from eapo.tasks.reasoning_gym_tasks import generator_names
from eapo.tasks.rewards import RewardFn, ScoreResult, score_completions, stop_workers
from eapo.tasks.verifiers import verify

__all__ = [
    "DEFAULT_SYSTEM_PROMPTS",
    "Problem",
    "RewardFn",
    "ScoreResult",
    "Task",
    "TaskConfig",
    "build_prompt",
    "extract_answer",
    "format_rate",
    "generator_names",
    "last_number",
    "load_task",
    "parse_number",
    "reference_completion",
    "score_completions",
    "stop_workers",
    "strict_answer",
    "system_prompt",
    "verify",
]
