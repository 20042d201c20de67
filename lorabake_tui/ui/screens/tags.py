from .stage import ComingScreen


class TagsScreen(ComingScreen):
    STAGE = "tags"
    TITLE_TEXT = "Tags"
    PLANNED = ("Bulk caption editing for every image: tag frequencies, filters (AND/OR/NOT), "
               "find-replace, prune, delete, consolidate, synonyms, trigger tag first, "
               "auto-tagging with a WD1.4/v3 ONNX tagger, and undo for all of it.")
