"""BERT with mean pooling, for sentence-transformers models trained that way (all-MiniLM-L6-v2).

SGLang's BertModel pools the [CLS] token whatever the model's 1_Pooling config says; for a
mean-pooled model that serves vectors at cosine ~0.58 from the real ones. The class keeps
SGLang's name because the registry matches the ``architectures`` entry of config.json.
"""

from sglang.srt.layers.pooler import Pooler, PoolingType
from sglang.srt.models import bert


class BertModel(bert.BertModel):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.use_bert_pooler:
            self.pooler = Pooler(pooling_type=PoolingType.MEAN, normalize=True)


EntryClass = [BertModel]
